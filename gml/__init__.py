"""gml: the Generative Machine Listener.

Predicts the distribution of MUSHRA listener scores (0-100) for a pair of reference and coded
audio signals.
"""

__version__ = "0.1.0.dev0"
