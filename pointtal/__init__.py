"""pointtal: temporal action localization from point supervision (SF-Net, SODA, LACP, HR-Pro; ActionFormer on their pseudo labels)."""

__version__ = "0.1.0"
