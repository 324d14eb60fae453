"""The in-process small language model: the llama.cpp adapter (``llama``, the only
``llama_cpp`` importer), pools run off the event loop (``pool``, ``breaker``,
``loading``), model files (``files``), prompts and strict reranking (``prompts``), and
item vectors (``vectors``, ``semantic``)."""
