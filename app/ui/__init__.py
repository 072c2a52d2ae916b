"""The UI kit: session keys, messages, widgets drawn from params, pickers, the settings column, figures, Share."""
