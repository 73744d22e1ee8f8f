"""What the load balancer's app holds, under these keys: set up by `main.py`, read by the routes and `/stats`."""

from aiohttp import web

from titanium_common.fanout import SharedFanout
from titanium_common.pool import ReplicaPool
from titanium_common.websocket_quota import WebSocketQuota

from .settings import LoadBalancerSettings
from .traffic import SharedTraffic, TrafficMeter

SETTINGS = web.AppKey("settings", LoadBalancerSettings)
GATEWAY = web.AppKey("gateway_pool", ReplicaPool)
DASHBOARD = web.AppKey("dashboard_pool", ReplicaPool)
METER = web.AppKey("traffic_meter", TrafficMeter)
# Suite-wide figures in Redis; absent without REDIS_URL.
SHARED = web.AppKey("shared_traffic", SharedTraffic)
FANOUT = web.AppKey("stats_fanout", SharedFanout)
# The other services /stats reads, as pools of their replicas (in the order /stats lists them).
STATS_POOLS = web.AppKey("stats_pools", list)
# Every open client WebSocket (heartbeat and relayed), so that shutdown can close them with 1001.
SOCKETS = web.AppKey("open_sockets", set)
WEBSOCKET_QUOTA = web.AppKey("websocket_quota", WebSocketQuota)
