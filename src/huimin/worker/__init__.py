"""`huimin worker`: the platform's scheduled jobs and stream consumers, safe to run as several copies."""
