"""streamgen: a Kafka consumer fleet that turns image-generation requests into images."""

__version__ = "0.1.0"
