"""Studies: SODA's ablation tables and inference-time ensembles, built on the engine and the methods.

Dependencies point one way: cli -> engine / studies -> methods -> data. Studies import the engine
(training, inference, evaluation) and the methods; the engine and the methods never import studies.
"""
