"""Talking to Kafka: one security path (``security``), where to connect (``target``),
faust transport fixes (``faust_transport``), topics, publishing, reading changelogs."""
