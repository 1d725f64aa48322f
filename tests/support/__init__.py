"""What the tests share: helpers, NVML scenarios, the second box, support for the e2e and dashboard suites."""
