"""Recording labelled stream sessions into the incoming folder that ``posture retrain`` reads.

``request.py`` checks what a client asks for (label, subject, and whether it may),
``timeline.py`` puts a session's samples on the model's grid, ``files.py`` writes a part
atomically with its manifest line, and ``recorder.py`` ties them to a session.
"""
