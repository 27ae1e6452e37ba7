"""Studio Avatar: a Blender extension that turns a phone video of a head into a relightable avatar.

This file only registers and unregisters. ``bpy`` and the UI modules are
imported inside ``register()`` so that importing this package (and ``core``)
works in plain Python: in tests, the command-line tool and the worker process.
"""


def register():
    from . import registration

    registration.register()


def unregister():
    from . import registration

    registration.unregister()
