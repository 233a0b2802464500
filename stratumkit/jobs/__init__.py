"""Work for miners: template sources, the job registry, extranonce allocation, found blocks."""
