"""The built-in demo: a k-fold set, an impostor, an inert adapter and a malicious pickle, built locally, then
vetted."""
