"""pointtal: temporal action localization from point supervision (SF-Net, SODA)."""

__version__ = "0.1.0"
