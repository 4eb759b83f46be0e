"""The Kafka protocol spoken directly, for what librdkafka's clients do not offer: a share
group's offsets and lag (``share_offsets``), over one logged-in connection (``link``), in the
protocol's encodings (``wire``), with SCRAM's client side (``scram``)."""
