"""Teachers: the conventional recommender, recorded GPT-4 answers, LLMs."""
