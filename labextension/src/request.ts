import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

const NAMESPACE = 'jupyter-mlops';

/**
 * Call the server extension's REST API.
 *
 * @param endPoint path under `<base_url>/jupyter-mlops/api/`, query string included
 * @param init request options passed to `fetch`
 * @param serverSettings connection settings; the page's own settings by default
 * @returns the decoded JSON answer
 * @throws ServerConnection.ResponseError carrying the server's `message` on a non-OK answer
 */
export async function requestAPI<T>(
  endPoint: string,
  init: RequestInit = {},
  serverSettings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(serverSettings.baseUrl, NAMESPACE, 'api', endPoint);
  const response = await ServerConnection.makeRequest(url, init, serverSettings);
  const body = await response.text();
  const data = body.length > 0 ? parseJSON(body) : null;

  if (!response.ok) {
    const message =
      data !== null && typeof data === 'object' && 'message' in data
        ? String((data as { message: unknown }).message)
        : `${response.status} ${response.statusText}`;
    throw new ServerConnection.ResponseError(response, message);
  }
  return data as T;
}

function parseJSON(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    // Not JSON (e.g. a proxy's HTML error page): keep the raw text.
    return body;
  }
}
