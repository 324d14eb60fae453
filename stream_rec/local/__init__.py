"""Starting things on one machine: embedded Tansu/Kafka brokers, worker processes, a
llama.cpp server for tests, the newcomer's demo and its hostile-event generator.

Only the CLI, ``bench``, ``chaos`` and the tests import from here (an import contract
pins it): production code never starts a broker of its own.
"""
