"""Demo models: the email idempotency record and the simulated partners' status."""

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


class PartnerStatus(models.Model):
    """Whether a simulated partner system is down: its tasks fail until it is back."""

    name = models.CharField(max_length=50, unique=True)
    down = models.BooleanField(default=False)

    @classmethod
    def is_down(cls, name: str) -> bool:
        return cls.objects.filter(name=name, down=True).exists()

    def __str__(self) -> str:
        return f"{self.name} ({'down' if self.down else 'up'})"
