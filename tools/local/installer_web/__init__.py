"""The installer web app in the local run: the built site served with the stack's own
security headers and config (endpoints pointed at this machine), the AWS endpoints the browser
calls (emulated where moto lacks them), a simulated device on its setup address, and the
browser robot that drives it all (web/installer/e2e/robot.mjs). See docs/local-run.md."""
