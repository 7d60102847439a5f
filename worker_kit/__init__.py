"""worker_kit"""
