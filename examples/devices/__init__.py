"""Devices built on the AWS IoT Device SDK v2 for Python (`awsiotsdk`): each module is a small
runnable script and the functions the local run's journeys call."""
