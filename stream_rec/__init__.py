"""stream-rec: a streaming, event-driven product recommender.

Events in (Kafka), per-user state in RocksDB tables, recommendations out.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
