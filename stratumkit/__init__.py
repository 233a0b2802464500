"""stratumkit: a Stratum V1 SHA-256d mining pool on trio whose GPU rigs can be leased to AI inference."""

__version__ = "0.1.0"
