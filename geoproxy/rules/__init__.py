"""HTTP rules, pure and table-driven: fetches, converters, matchers, ACL conditions,
log-format strings and the ``http-request``/``http-response``/``http-after-response`` actions.

Two phases, as persistence has them: ``spec`` values (what a configuration line means,
checked by the parser with ``expr``/``logformat``/``actions`` parsing) are compiled once per
process into closures over a ``txn.Txn`` (``compile``); a request then only runs closures.
This package does no I/O: files are read by the configuration parser, time is passed in.
"""
