"""The test suite, in folders by the package layer each file tests (e2e: whole runs)."""
