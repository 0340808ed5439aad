"""Image-quality (PSNR, SSIM) and segmentation (pixel accuracy, mean IoU) metrics."""

from pyimg.metrics.image_quality import psnr, rgb_to_y, ssim
from pyimg.metrics.segmentation import confusion_matrix, mean_iou, pixel_accuracy

__all__ = ["confusion_matrix", "mean_iou", "pixel_accuracy", "psnr", "rgb_to_y", "ssim"]
