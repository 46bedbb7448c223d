module modelship.local/pause

go 1.22
