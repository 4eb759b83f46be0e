"""Helpers shared by tests: reading what reached the real broker (``kafka``), and the
in-memory Kafka clients (``memory_kafka``) that unit tests pass to the worker through its seams.

The benchmarks that run the worker where no broker can borrow ``memory_kafka`` too. So this
package imports only streamgen and third-party packages, never benchmarks or the rest of tests
(``tests/unit/test_layering.py`` checks it): the borrowing stays a one-way street.
"""
