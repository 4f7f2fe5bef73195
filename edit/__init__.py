"""Edit requests: the instruction prompt, the answer's parsing and the minimal edit it makes."""
