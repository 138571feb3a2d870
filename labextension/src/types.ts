/**
 * Answer of `GET jupyter-mlops/api/store?path=...`: where the store of a
 * notebook's folder lives, as the server resolved it.
 */
export interface StoreInfo {
  home: string;
  /** False until the first snapshot or run creates the folder. */
  home_exists: boolean;
  tracking_uri: string;
  snapshot_store: string;
  experiment: string;
  /** The notebook the answer was resolved for, or null when none was given. */
  notebook: string | null;
  /** Where each setting came from (e.g. "default", "env", "pyproject"). */
  sources: Record<string, string>;
  version: string;
}
