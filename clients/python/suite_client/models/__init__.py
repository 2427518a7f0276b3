"""Contains all the data models used in inputs/outputs"""

from .auth_jwk import AuthJWK
from .auth_jwks import AuthJWKS
from .auth_login import AuthLogin
from .auth_pagination_metadata import AuthPaginationMetadata
from .auth_problem import AuthProblem
from .auth_problem_errors import AuthProblemErrors
from .auth_profile_patch import AuthProfilePatch
from .auth_refresh_token import AuthRefreshToken
from .auth_register import AuthRegister
from .auth_registration import AuthRegistration
from .auth_token_pair import AuthTokenPair
from .auth_user import AuthUser
from .auth_user_page import AuthUserPage
from .auth_user_patch import AuthUserPatch
from .auth_user_patch_role import AuthUserPatchRole
from .auth_verify_email import AuthVerifyEmail
from .gateway_problem import GatewayProblem
from .list_orders_status import ListOrdersStatus
from .list_webhook_attempts_outcome import ListWebhookAttemptsOutcome
from .notifications_delivery import NotificationsDelivery
from .notifications_notification import NotificationsNotification
from .notifications_notification_page import NotificationsNotificationPage
from .notifications_pagination_metadata import NotificationsPaginationMetadata
from .notifications_problem import NotificationsProblem
from .notifications_problem_errors import NotificationsProblemErrors
from .notifications_subject import NotificationsSubject
from .notifications_subject_type import NotificationsSubjectType
from .notifications_webhook import NotificationsWebhook
from .notifications_webhook_attempt import NotificationsWebhookAttempt
from .notifications_webhook_attempt_outcome import NotificationsWebhookAttemptOutcome
from .notifications_webhook_attempt_page import NotificationsWebhookAttemptPage
from .notifications_webhook_create import NotificationsWebhookCreate
from .notifications_webhook_create_event_types_item import NotificationsWebhookCreateEventTypesItem
from .notifications_webhook_created import NotificationsWebhookCreated
from .notifications_webhook_list import NotificationsWebhookList
from .notifications_webhook_recover import NotificationsWebhookRecover
from .notifications_webhook_recovered import NotificationsWebhookRecovered
from .notifications_webhook_rotate import NotificationsWebhookRotate
from .notifications_webhook_rotated import NotificationsWebhookRotated
from .orders_order import OrdersOrder
from .orders_order_cancel import OrdersOrderCancel
from .orders_order_create import OrdersOrderCreate
from .orders_order_create_currency import OrdersOrderCreateCurrency
from .orders_order_item import OrdersOrderItem
from .orders_order_item_create import OrdersOrderItemCreate
from .orders_order_page import OrdersOrderPage
from .orders_order_status import OrdersOrderStatus
from .orders_order_status_change import OrdersOrderStatusChange
from .orders_order_status_change_status import OrdersOrderStatusChangeStatus
from .orders_pagination_metadata import OrdersPaginationMetadata
from .orders_problem import OrdersProblem
from .orders_problem_errors import OrdersProblemErrors
from .orders_product import OrdersProduct
from .orders_product_create import OrdersProductCreate
from .orders_product_create_currency import OrdersProductCreateCurrency
from .orders_product_page import OrdersProductPage
from .orders_product_patch import OrdersProductPatch
from .orders_product_patch_currency import OrdersProductPatchCurrency

__all__ = (
    "AuthJWK",
    "AuthJWKS",
    "AuthLogin",
    "AuthPaginationMetadata",
    "AuthProblem",
    "AuthProblemErrors",
    "AuthProfilePatch",
    "AuthRefreshToken",
    "AuthRegister",
    "AuthRegistration",
    "AuthTokenPair",
    "AuthUser",
    "AuthUserPage",
    "AuthUserPatch",
    "AuthUserPatchRole",
    "AuthVerifyEmail",
    "GatewayProblem",
    "ListOrdersStatus",
    "ListWebhookAttemptsOutcome",
    "NotificationsDelivery",
    "NotificationsNotification",
    "NotificationsNotificationPage",
    "NotificationsPaginationMetadata",
    "NotificationsProblem",
    "NotificationsProblemErrors",
    "NotificationsSubject",
    "NotificationsSubjectType",
    "NotificationsWebhook",
    "NotificationsWebhookAttempt",
    "NotificationsWebhookAttemptOutcome",
    "NotificationsWebhookAttemptPage",
    "NotificationsWebhookCreate",
    "NotificationsWebhookCreated",
    "NotificationsWebhookCreateEventTypesItem",
    "NotificationsWebhookList",
    "NotificationsWebhookRecover",
    "NotificationsWebhookRecovered",
    "NotificationsWebhookRotate",
    "NotificationsWebhookRotated",
    "OrdersOrder",
    "OrdersOrderCancel",
    "OrdersOrderCreate",
    "OrdersOrderCreateCurrency",
    "OrdersOrderItem",
    "OrdersOrderItemCreate",
    "OrdersOrderPage",
    "OrdersOrderStatus",
    "OrdersOrderStatusChange",
    "OrdersOrderStatusChangeStatus",
    "OrdersPaginationMetadata",
    "OrdersProblem",
    "OrdersProblemErrors",
    "OrdersProduct",
    "OrdersProductCreate",
    "OrdersProductCreateCurrency",
    "OrdersProductPage",
    "OrdersProductPatch",
    "OrdersProductPatchCurrency",
)
