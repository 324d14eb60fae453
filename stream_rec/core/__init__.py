"""The pure core: events → per-user profile → candidates → ranking → recommendation.

No Kafka, faust, RocksDB or llama.cpp here (an import contract pins it): the worker and
the offline evaluator run exactly this code. Read it in data-path order: ``events``
(wire types, validation), ``profile`` (per-user state), ``item_stats`` (shared item
statistics), ``candidates``, ``ranking``, ``recommender`` (the one object both use),
``router`` (A/B arms).
"""
