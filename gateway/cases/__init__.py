"""Case threads: who governs a case, its parties, lead professionals and notices."""
