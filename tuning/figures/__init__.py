"""Drawing shared by tracking, the report and the learning-rate range test: the ``Chart`` record and
learning-curve pictures."""
