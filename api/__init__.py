"""The one-time secret service: settings, storage, crypto, the service layer and transports."""
