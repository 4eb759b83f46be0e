"""The producer side: build requests (flags, JSONL, CSV + template), publish them idempotently,
follow their results, fetch their images. ``streamgen submit`` (streamgen.cli.submit) wires it.

::

    sources   text → GenerationRequest, every mistake with its file:line   (pure)
    fields    one field's JSON or text value → its typed value               (pure)
    publish   keyed, idempotent, acks=all; fails naming undelivered ids
    follow    results topic from its end at submit time, until all arrive or timeout
    summary   succeeded / failed by code / missing, latency p50/p95         (pure)
    download  images of succeeded results, checked by sha256
"""
