"""The WhatsApp simulator: a fake Cloud API that checks WhatsApp's rules, and a web chat."""
