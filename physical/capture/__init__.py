"""Frame sources and photos: folders, webcams, phone streams, videos, the simulator's stream, guided
capture and the replay server (the capture stage is :mod:`physical.stages.capture`)."""
