"""The SLM faust worker: ``app`` wires topics, tables and agents; ``handlers`` decide what
each message does (no faust); ``arms`` answer a trigger per A/B arm; ``runtime``,
``model_runtime``, ``replicated``, ``dlq``, ``metrics`` and ``web`` hold the rest."""
