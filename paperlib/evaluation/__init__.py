"""The paper's numbers: metrics, paired significance tests, fusion, scoring of every system on each set, per-condition
breakdowns, Table 1, §5.2, §5.3, Table 2 and the figures and tables written from them.

May import: paperlib.retrieval and every layer below it."""
