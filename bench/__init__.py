"""bench: a benchmark harness comparing full fine-tuning with lightweight adaptation methods.

Data flows one way: grid spec -> cells -> runner -> store -> reports.
"""

__version__ = "0.1.0"
