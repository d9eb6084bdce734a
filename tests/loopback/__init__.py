"""The loopback phone: a device-side adb daemon and a phone-like sandbox, for testing the phone path."""
