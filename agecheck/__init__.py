"""agecheck: age estimation from face photos."""
