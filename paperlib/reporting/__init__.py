"""What the stages show: the results tables (CSV, Markdown, LaTeX) and figures, written byte-identically on a rerun, the
systems' labels and the environment record.

May import: paperlib.runtime."""
