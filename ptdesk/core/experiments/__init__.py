"""An experiment's life: what is asked, launch, listing, stop/start/rm, events, reconcile, cull."""
