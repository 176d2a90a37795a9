"""Studies: run pre-training-vs-scratch arms, compute a verdict, write the report; the demo."""
