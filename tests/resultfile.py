"""
resultfile.py: the one reader of fetchd's J.result files, for the tests
(tests/fetchdtest.py) and the benchmark (bench/run).

A result file is a '#' header naming the columns, then one tab-separated
row per URL in job order (src/result.h writes them). Importing this module
has no side effects.
"""

RESULT_COLUMNS = ["url", "outcome", "http_status", "bytes", "seconds",
                  "attempts", "path", "error"]
# Cluster mode adds the node that fetched the URL on the rows it sent out.
CLUSTER_COLUMNS = RESULT_COLUMNS + ["node"]
# A job with mirror= fields adds, last, the URL that served the file (or
# the last one tried) on the rows of URLs that were tried.
MIRROR_COLUMNS = RESULT_COLUMNS + ["served_by"]
CLUSTER_MIRROR_COLUMNS = CLUSTER_COLUMNS + ["served_by"]
HEADERS = (RESULT_COLUMNS, CLUSTER_COLUMNS, MIRROR_COLUMNS,
           CLUSTER_MIRROR_COLUMNS)


class Row:
    """One line of a J.result file."""

    def __init__(self, fields, lineno, raw, columns=RESULT_COLUMNS):
        fields = list(fields) + [""] * (len(RESULT_COLUMNS) - len(fields))
        # The optional columns (node, served_by), in the header's order,
        # on the rows that have them; None on the others.
        self.node = None
        self.served_by = None
        extra = columns[len(RESULT_COLUMNS):]
        n = min(len(extra), len(fields) - len(RESULT_COLUMNS))
        if n > 0:
            for name, value in zip(extra, fields[-n:]):
                setattr(self, name, value)
            del fields[-n:]
        self.raw = raw
        self.lineno = lineno
        self.url = fields[0]
        self.outcome = fields[1]
        self.status = _num(int, fields[2])
        self.bytes = _num(int, fields[3])
        self.seconds = _num(float, fields[4])
        self.attempts = _num(int, fields[5])
        self.path = fields[6]
        self.error = fields[7] if len(fields) == len(RESULT_COLUMNS) else \
            "\t".join(fields[7:])

    @property
    def ok(self):
        return self.outcome in ("ok", "unchanged")

    @property
    def error_text(self):
        """The error column, "" when it says there is none."""
        return "" if self.error in ("", "-") else self.error

    def __repr__(self):
        return "<result line %d: %r>" % (self.lineno, self.raw)


def _num(conv, s):
    try:
        return conv(s)
    except ValueError:
        return None


def read_result(path):
    """
    Rows of a result file. The first line must be the column header:
    '#' then the columns url outcome http_status bytes seconds attempts
    path error, then node in cluster mode, then served_by for a job with
    mirrors (else ValueError). Later '#' lines and blank lines are
    skipped.
    """
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or not lines[0].startswith("#"):
        raise ValueError("%s: first line is not a '#' header: %r"
                         % (path, lines[:1]))
    cols = lines[0].lstrip("#").split()
    if cols not in HEADERS:
        raise ValueError("%s: header names %r, expected %r"
                         % (path, cols, RESULT_COLUMNS))
    columns = HEADERS[HEADERS.index(cols)]
    rows = []
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.startswith("#"):
            continue
        rows.append(Row(line.split("\t"), i, line, columns))
    return rows
