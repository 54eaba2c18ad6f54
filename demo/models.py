"""Demo models: the record that makes the demo email task idempotent."""

from django.db import models


class SentEmail(models.Model):
    """One email the demo sent, keyed so that a repeated task does not send it twice."""

    key = models.CharField(max_length=200, unique=True)
    user_id = models.BigIntegerField()
    template = models.CharField(max_length=100)
    address = models.CharField(max_length=254)
    sent_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.template} to {self.address}"
