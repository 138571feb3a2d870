"""One colour per run, in the order the runs were given: the SVG curves of ``%compare`` and its
plotly figure agree. (Its own module: the display face imports it at load, with nothing heavy.)"""

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
