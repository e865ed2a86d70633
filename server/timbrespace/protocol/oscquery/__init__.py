"""OSCQuery (the Vidvox proposal): the namespace derived from the address declaration, served over HTTP."""
