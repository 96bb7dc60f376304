"""The seed's CNN in several implementation styles behind the harness's training interface."""
