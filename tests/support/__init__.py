"""Helpers shared by tests (real-broker utilities; no fakes of Kafka or MinIO live here)."""
