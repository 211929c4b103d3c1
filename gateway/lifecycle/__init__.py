"""Recall and correction: the sender takes back or supersedes a message it sent.

``tables`` keeps each recall or correction with its outcome per recipient;
``sender`` makes and signs them; ``outcomes`` reads the recipients' signed
receipts (what was done, when the original had been handed over);
``feature`` registers what received messages do.
"""
