"""HTTP emulators of the vendor APIs the connectors call, started on 127.0.0.1 by test fixtures."""
