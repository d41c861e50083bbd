"""The job RQ's workers run in H9 (importable by `rq worker`)."""


def tiny(x):
    return x + 1
